//! Media & Cerita: the stories of the media items, with their sources, units, linked and
//! suggested reports, and figures that disagree; one story with why each item is in it, and
//! an analyst's merges and splits (`pasopati_analysis::edits`).

use super::{csrf_field, layout, CsrfOnly};
use crate::newsroom::EditError;
use crate::store::RecordedEdit;
use crate::web::api::{self, internal, ListQuery};
use crate::web::show::{self, Zone};
use crate::web::{Principal, Web};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use pasopati_analysis::batch::StoryDocument;
use pasopati_analysis::edits::StoryEdit;
use pasopati_analysis::engine::{CopyEvidence, Reason, Refusal};
use pasopati_analysis::sentiment;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `GET /cerita`: Media & Cerita.
pub fn cerita(web: &Web, who: Principal, Query(q): Query<ListQuery>) -> Response {
    let all_stories = match api::scoped_stories(&web.state, &who.reach) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let site = q.site.as_deref().filter(|s| !s.is_empty());
    let stories: Vec<&pasopati_analysis::batch::StoryResult> = all_stories
        .iter()
        .filter(|s| !s.items.is_empty())
        .filter(|s| site.is_none_or(|site| s.upt.iter().any(|u| u == site)))
        .collect();
    let mut stories = stories;
    stories.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
    let total = stories.len();
    let names = show::Names::of(&web.state.store);
    let body = html! {
        p { (total) " cerita dari media; salinan sindikasi dilipat. " a href="/api/v1/stories?format=csv&limit=1000" { "Unduh CSV" } }
        @for s in stories.iter().skip(q.offset()).take(q.limit()) {
            section.kotak {
                b { a href=(format!("/cerita/{}", s.id)) { (s.title) } } " " span class=(sentiment::class(s.sentiment as f32)) { (format!("{:+.2}", s.sentiment)) }
                div { "UPT: " (names.units(&s.upt)) " · Kanwil: " (s.kanwil.join(", ")) " · " (show::local_text(&s.first_seen, Zone::Wib)) " – " (show::local_text(&s.last_seen, Zone::Wib)) }
                div { "Sumber: " (s.sources.join(", ")) " · " (s.items.len()) " item (" (s.duplicates.len()) " salinan)" }
                @if !s.reports.is_empty() { div { "Laporan UPT: " @for r in &s.reports { a href=(format!("/laporan/{r}")) { (r) } " " } } }
                @if !s.suggested_reports.is_empty() { div { "Laporan yang mungkin terkait: " @for r in &s.suggested_reports { a href=(format!("/laporan/{r}")) { (r) } " " } } }
                @for c in &s.figure_conflicts { div.urgent { "Angka berbeda (" (c.key) "): media " (c.item) " menyebut " (c.media_value) ", laporan " (c.report) " menyebut " (c.report_value) } }
            }
        }
    };
    layout("Media & Cerita", "/cerita", &who, body)
}

/// Why a document is in its story, in the dashboard's words.
fn why(reason: &Reason, names: &show::Names) -> String {
    match reason {
        Reason::Copy { of, evidence } => {
            let how = match evidence {
                CopyEvidence::SameUrl => "alamat URL sama",
                CopyEvidence::SameText => "teks sama",
                CopyEvidence::NearText => "teks hampir sama, dengan UPT dan angka yang sama",
            };
            format!("Salinan dari {of} ({how}).")
        }
        Reason::SharedUnit { unit, score } => format!(
            "Menyebut {} seperti cerita ini, dalam jangka waktu cerita; kemiripan isi {score:.2}.",
            names.unit(unit)
        ),
        Reason::FollowUp {
            unit,
            score,
            hours_since_last,
        } => format!(
            "Berita lanjutan kejadian di {}, {hours_since_last} jam setelah item terakhir cerita; jenis peristiwa sama, kemiripan {score:.2}.",
            names.unit(unit)
        ),
        Reason::SimilarContent {
            score,
            event,
            figures,
        } => {
            let mut text = format!(
                "Tidak ada UPT yang sama disebut, tetapi isinya mirip ({score:.2}) dan jenis peristiwanya sama ({})",
                show::category(event)
            );
            if !figures.is_empty() {
                let list: Vec<String> = figures.iter().map(u64::to_string).collect();
                text.push_str(&format!("; angka yang sama: {}", list.join(", ")));
            }
            text.push('.');
            text
        }
        Reason::NewStory { nearest: None } => "Memulai cerita ini.".into(),
        Reason::NewStory {
            nearest: Some(nearest),
        } => {
            let why_not = match nearest.refused {
                Refusal::TooDissimilar { needed } => {
                    format!("kemiripannya {:.2}, di bawah {needed:.2}", nearest.score)
                }
                Refusal::OtherEventType => "jenis peristiwanya berbeda".into(),
                Refusal::OtherQuantities => {
                    "kegiatan rutin di UPT yang sama dengan jumlah berbeda (peristiwa lain)".into()
                }
                Refusal::TooLate => "item terakhirnya sudah terlalu lama".into(),
                Refusal::OtherUnit => "menyebut UPT lain".into(),
            };
            format!(
                "Memulai cerita ini. Cerita terdekat, {}, tidak diikuti: {why_not}.",
                nearest.story
            )
        }
    }
}

/// `GET /cerita/{id}`: one story, each item and report with why it is there, and (for
/// analysts) merging, splitting and undoing.
pub fn cerita_detail(web: &Web, who: Principal, Path(id): Path<String>) -> Response {
    let detail = match api::scoped_story(web, &who.reach, &id) {
        Ok(Some(d)) => d,
        Ok(None) => return moved_or_missing(web, &id),
        Err(e) => return internal(e),
    };
    let edits = match web.state.newsroom.edits() {
        Ok(e) => e,
        Err(e) => return internal(e),
    };
    let story = &detail.story;
    let media = web
        .state
        .store
        .media_items(
            detail
                .documents
                .iter()
                .filter(|d| !d.report)
                .map(|d| d.id.as_str()),
        )
        .unwrap_or_default();
    let title_of = |doc: &StoryDocument| -> (String, Option<String>) {
        if doc.report {
            let title = doc
                .id
                .parse::<pasopati_common::ReportId>()
                .ok()
                .and_then(|rid| web.state.store.report(&rid).ok().flatten())
                .map_or_else(|| doc.id.clone(), |r| r.report.title);
            (title, Some(format!("/laporan/{}", doc.id)))
        } else {
            match media.iter().find(|m| m.id == doc.id) {
                Some(m) => (
                    m.title.clone(),
                    Some(m.url.clone()).filter(|u| !u.is_empty()),
                ),
                None => (doc.id.clone(), None),
            }
        }
    };
    let names = show::Names::of(&web.state.store);
    let editor = who.may(crate::web::ANALYST);
    let touching: Vec<&RecordedEdit> = edits
        .iter()
        .filter(|e| edit_touches(&e.edit, &story.id))
        .collect();
    let body = html! {
        h2 { (story.title) " " span class=(sentiment::class(story.sentiment as f32)) { (format!("{:+.2}", story.sentiment)) } }
        p { "UPT: " (names.units(&story.upt)) " · Kanwil: " (story.kanwil.join(", ")) " · " (show::local_text(&story.first_seen, Zone::Wib)) " – " (show::local_text(&story.last_seen, Zone::Wib)) " · " code { (story.id) } }
        @if !story.merged_from.is_empty() { p.pesan { "Analis menggabungkan ke cerita ini: " (story.merged_from.join(", ")) } }
        @if let Some(from) = &story.split_from { p.pesan { "Analis memisahkan cerita ini dari " a href=(format!("/cerita/{from}")) { (from) } } }
        form method="post" action=(format!("/cerita/{}/pisah", story.id)) {
            (csrf_field(&who))
            table {
                tr { @if editor { th { "Pisah" } } th { "Waktu" } th { "Sumber" } th { "Judul" } th { "Mengapa di cerita ini" } }
                @for (n, doc) in detail.documents.iter().enumerate() {
                    @let (title, link) = title_of(doc);
                    tr {
                        @if editor { td { input type="checkbox" name=(format!("dok_{n}")) value=(doc.id) aria-label="pilih untuk dipisah"; } }
                        td { (show::local_text(&doc.published_at, Zone::Wib)) }
                        td { @if doc.report { "Laporan UPT" } @else { (doc.source) } }
                        td { @if let Some(href) = link { a href=(href) rel="noopener noreferrer" { (title) } } @else { (title) } }
                        td {
                            @if doc.moved_by_analyst { b { "Dipindahkan analis. " } "Mesin: " }
                            (why(&doc.reason, &names))
                        }
                    }
                }
            }
            @if editor {
                p { input name="title" placeholder="Judul cerita baru (opsional)" size="40"; " "
                    input name="note" placeholder="Alasan" size="30"; " "
                    button type="submit" { "Pisahkan yang dicentang ke cerita baru" } }
            }
        }
        @if editor {
            h2 { "Gabungkan cerita lain ke cerita ini" }
            form method="post" action=(format!("/cerita/{}/gabung", story.id)) {
                (csrf_field(&who))
                input name="from" placeholder="ID cerita yang digabung (story-…)" size="40" required; " "
                input name="note" placeholder="Alasan" size="30"; " "
                button type="submit" { "Gabungkan" }
            }
        }
        @if !touching.is_empty() {
            h2 { "Riwayat suntingan analis" }
            table {
                tr { th { "No." } th { "Suntingan" } th { "Oleh" } th { "Alasan" } th { "Keadaan" } }
                @for e in &touching {
                    tr {
                        td { (e.number) }
                        td { (describe(&e.edit)) }
                        td { (e.by) }
                        td { (e.note) }
                        td {
                            @if let Some(by) = &e.undone_by { "dibatalkan oleh " (by) }
                            @else if editor {
                                form method="post" action=(format!("/cerita/suntingan/{}/batal", e.number)) {
                                    (csrf_field(&who)) button type="submit" { "Batalkan" }
                                }
                            } @else { "berlaku" }
                        }
                    }
                }
            }
        }
        (super::tanggapan::section(web, &who, &story.id))
        p.usang { "Suntingan analis hanya mengubah tampilan cerita; aturan pengelompokan mesin tidak belajar darinya. Item baru tetap ditempatkan oleh aturan yang sama." }
    };
    layout("Cerita", "/cerita", &who, body)
}

/// A story that is not listed: merged into another (go there), or unknown.
fn moved_or_missing(web: &Web, id: &str) -> Response {
    let merged_into = web.state.newsroom.edits().ok().and_then(|edits| {
        edits.into_iter().rev().find_map(|e| match e.edit {
            StoryEdit::Merge { from, into } if e.active() && from == id => Some(into),
            _ => None,
        })
    });
    match merged_into {
        Some(into) => Redirect::to(&format!("/cerita/{into}")).into_response(),
        None => (StatusCode::NOT_FOUND, "cerita tidak ditemukan").into_response(),
    }
}

fn edit_touches(edit: &StoryEdit, story: &str) -> bool {
    match edit {
        StoryEdit::Merge { from, into } => from == story || into == story,
        StoryEdit::Split { story: s, id, .. } => s == story || id == story,
    }
}

fn describe(edit: &StoryEdit) -> String {
    match edit {
        StoryEdit::Merge { from, into } => format!("{from} digabung ke {into}"),
        StoryEdit::Split {
            story, id, docs, ..
        } => format!("{} dipisah dari {story} menjadi {id}", docs.join(", ")),
    }
}

/// The split form: the checked documents are its `dok_<n>` fields.
#[derive(Deserialize)]
pub struct SplitForm {
    pub(super) csrf: Option<String>,
    #[serde(default)]
    title: String,
    #[serde(default)]
    note: String,
    #[serde(flatten)]
    checked: BTreeMap<String, String>,
}

/// `POST /cerita/{id}/pisah`: Pisahkan item ke cerita baru.
pub fn cerita_pisah(
    web: &Web,
    who: Principal,
    Path(id): Path<String>,
    form: SplitForm,
) -> Response {
    let docs: Vec<String> = form
        .checked
        .iter()
        .filter(|(k, _)| k.starts_with("dok_"))
        .map(|(_, v)| v.clone())
        .collect();
    let actor = format!("dashboard:{}", who.username);
    match web
        .state
        .newsroom
        .split_story(&id, &docs, &form.title, &form.note, &actor)
    {
        Ok(n) => Redirect::to(&format!("/cerita/pisah-{n}")).into_response(),
        Err(e) => refused(e),
    }
}

#[derive(Deserialize)]
pub struct MergeForm {
    pub(super) csrf: Option<String>,
    from: String,
    #[serde(default)]
    note: String,
}

/// `POST /cerita/{id}/gabung`: Gabungkan cerita lain ke cerita ini.
pub fn cerita_gabung(
    web: &Web,
    who: Principal,
    Path(id): Path<String>,
    form: MergeForm,
) -> Response {
    let actor = format!("dashboard:{}", who.username);
    match web
        .state
        .newsroom
        .merge_stories(&form.from, &id, &form.note, &actor)
    {
        Ok(_) => Redirect::to(&format!("/cerita/{id}")).into_response(),
        Err(e) => refused(e),
    }
}

/// `POST /cerita/suntingan/{id}/batal`: Batalkan suntingan cerita.
pub fn cerita_batal(web: &Web, who: Principal, Path(number): Path<u64>, _: CsrfOnly) -> Response {
    let actor = format!("dashboard:{}", who.username);
    match web.state.newsroom.undo_edit(number, &actor) {
        Ok(e) => {
            let back = match e.edit {
                StoryEdit::Merge { into, .. } => into,
                StoryEdit::Split { story, .. } => story,
            };
            Redirect::to(&format!("/cerita/{back}")).into_response()
        }
        Err(e) => refused(e),
    }
}

fn refused(e: EditError) -> Response {
    match e {
        EditError::Store(e) => internal(e),
        refused => (StatusCode::BAD_REQUEST, refused.to_string()).into_response(),
    }
}
