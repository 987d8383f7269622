//! Verifikasi: figure conflicts, stories without reports, and the claims register with its
//! forms for a new claim and a verdict.

use super::{csrf_field, layout};
use crate::admin::{self};
use crate::store::Verdict;
use crate::web::api::internal;
use crate::web::{Principal, Web};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use pasopati_common::Timestamp;
use serde::Deserialize;

/// `GET /verifikasi`: Register klaim.
pub fn verifikasi(web: &Web, who: Principal, _: ()) -> Response {
    let claims = match admin::claims(&web.state.store) {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let stories = web.state.newsroom.stories().unwrap_or_default();
    let conflicts: Vec<(&String, &pasopati_analysis::insight::FigureConflict)> = stories
        .iter()
        .flat_map(|s| s.figure_conflicts.iter().map(move |c| (&s.title, c)))
        .collect();
    let editor = who.may(crate::web::ANALYST);
    let body = html! {
        @if !conflicts.is_empty() {
            h2 { "Angka media yang berbeda dengan laporan UPT" }
            ul { @for (title, c) in &conflicts { li.urgent { (title) ": " (c.item) " menyebut " (c.media_value) " (" (c.key) "), laporan " (c.report) " menyebut " (c.report_value) } } }
        }
        @let suggested: Vec<&pasopati_analysis::batch::StoryResult> = stories.iter().filter(|s| !s.suggested_reports.is_empty()).take(20).collect();
        @if !suggested.is_empty() {
            h2 { "Cerita tanpa laporan UPT, dengan laporan yang mungkin cocok" }
            ul { @for s in &suggested { li { (s.title) ": " @for r in &s.suggested_reports { a href=(format!("/laporan/{r}")) { (r) } " " } } } }
        }
        h2 { "Register klaim" }
        table { tr { th { "No." } th { "Klaim" } th { "Muncul di" } th { "Vonis" } th { "Angka resmi" } th { "Laporan" } @if editor { th { "Catat vonis" } } }
            @for c in claims.iter().rev() {
                tr { td { (c.number) } td { (c.claim) } td { (c.appeared_source) " " (c.appeared_url) } td { b { (c.verdict.as_str()) } }
                     td { @if let Some(f) = &c.official_figure { (f.value) " — " (f.source) } } td { (c.linked_reports.join(", ")) }
                     @if editor { td { form method="post" action=(format!("/verifikasi/{}/vonis", c.number)) { (csrf_field(&who))
                        select name="verdict" { @for v in Verdict::ALL { option value=(v.as_str()) { (v.as_str()) } } }
                        input name="figure" placeholder="Angka resmi"; input name="figure_source" placeholder="Sumber"; input name="report" placeholder="ID laporan";
                        input name="evidence" placeholder="Bukti"; button type="submit" { "Simpan" } } } } }
            }
        }
        @if editor {
            h2 { "Catat klaim baru" }
            form method="post" action="/verifikasi" { (csrf_field(&who))
                p { textarea name="claim" rows="2" cols="80" placeholder="Klaim seperti yang muncul" required {} }
                input name="url" placeholder="URL"; input name="source" placeholder="Sumber"; input name="item" placeholder="ID item media";
                button type="submit" { "Catat" }
            }
        }
    };
    layout("Verifikasi", "/verifikasi", &who, body)
}

#[derive(Deserialize)]
pub struct ClaimForm {
    pub(super) csrf: Option<String>,
    claim: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    item: String,
}

/// `POST /verifikasi`: Catat klaim.
pub fn verifikasi_tambah(web: &Web, who: Principal, _: (), form: ClaimForm) -> Response {
    let item = Some(form.item.trim().to_owned()).filter(|s| !s.is_empty());
    match admin::claim_add(
        &web.state.store,
        &web.state.guard,
        form.claim,
        form.url,
        form.source,
        Timestamp::now().0,
        item,
        &format!("dashboard:{}", who.username),
    ) {
        Ok(_) => Redirect::to("/verifikasi").into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
pub struct VerdictForm {
    pub(super) csrf: Option<String>,
    verdict: String,
    #[serde(default)]
    figure: String,
    #[serde(default)]
    figure_source: String,
    #[serde(default)]
    report: String,
    #[serde(default)]
    evidence: String,
}

/// `POST /verifikasi/{id}/vonis`: Catat vonis klaim.
pub fn verifikasi_vonis(
    web: &Web,
    who: Principal,
    Path(id): Path<u64>,
    form: VerdictForm,
) -> Response {
    let figure = (!form.figure.trim().is_empty()).then(|| {
        (
            form.figure.trim().to_owned(),
            form.figure_source.trim().to_owned(),
            Timestamp::now().0,
        )
    });
    let reports: Vec<String> = form
        .report
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    match admin::claim_verdict(
        &web.state.store,
        &web.state.guard,
        id,
        &form.verdict,
        figure,
        reports,
        form.evidence,
        &format!("dashboard:{}", who.username),
    ) {
        Ok(_) => Redirect::to("/verifikasi").into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}
