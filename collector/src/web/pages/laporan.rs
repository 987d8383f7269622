//! Laporan: the reports, searched and filtered, and one report with its revisions and
//! attachments.

use super::{csrf_field, kanwil_select, layout};
use crate::web::api::{find_reports, internal, ListQuery};
use crate::web::show::{self};
use crate::web::{Principal, Web};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

/// `GET /laporan`: Laporan: cari dan saring.
pub fn laporan(web: &Web, who: Principal, Query(q): Query<ListQuery>) -> Response {
    let (found, total) = match find_reports(&web.state, &who.reach, &q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut sites = web.state.store.sites().unwrap_or_default();
    sites.retain(|s| who.reach.site(s.id.as_str()));
    let names = show::Names::of(&web.state.store);
    let taxonomy = pasopati_common::taxonomy::Taxonomy::builtin();
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    let next = q.offset() + q.limit();
    // The links carry the same filters, percent-encoded so that `&`, `#` or `+` in a search
    // stay part of its value.
    let next_query = ListQuery {
        offset: Some(next),
        format: None,
        ..q.clone()
    };
    let csv_query = ListQuery {
        format: Some("csv".into()),
        limit: Some(1000),
        offset: None,
        ..q.clone()
    };
    let body = html! {
        form.saring method="get" action="/laporan" {
            input name="q" placeholder="Cari teks…" value=(v(&q.q));
            select name="category" { option value="" { "Semua kategori" } @for c in taxonomy.categories() { option value=(c.id) selected[q.category.as_deref() == Some(c.id.as_str())] { (c.label) } } }
            @if who.reach.is_national() { (kanwil_select(q.kanwil.as_deref(), "Semua Kanwil")) }
            select name="site" { option value="" { "Semua UPT" } @for s in &sites { option value=(s.id.as_str()) selected[q.site.as_deref() == Some(s.id.as_str())] { (s.name) } } }
            select name="priority" { option value="" { "Semua prioritas" } option value="urgent" selected[q.priority.as_deref() == Some("urgent")] { "mendesak" } option value="normal" selected[q.priority.as_deref() == Some("normal")] { "biasa" } }
            input name="since" type="date" value=(v(&q.since));
            input name="until" type="date" value=(v(&q.until));
            button type="submit" { "Saring" }
        }
        p { (total) " laporan. " a href=(format!("/api/v1/reports?{}", csv_query.to_query_string())) { "Unduh CSV" } }
        table { tr { th { "Waktu" } th { "UPT" } th { "Kategori" } th { "Judul" } th { "Rev." } }
            @for r in &found {
                tr { td { (names.time(r.site.as_str(), r.report.occurred_at.0)) } td { (names.unit(r.site.as_str())) } td { (show::category(&r.report.category)) }
                     td class=(if r.report.priority == pasopati_common::Priority::Urgent { "urgent" } else { "" }) { a href=(format!("/laporan/{}", r.report.id)) { (r.report.title) } @if r.report.retraction.is_some() { " (ditarik)" } }
                     td { (r.report.revision) } }
            }
        }
        @if next < total.count || total.at_least { p { a href=(format!("/laporan?{}", next_query.to_query_string())) { "Berikutnya →" } } }
    };
    layout("Laporan", "/laporan", &who, body)
}

/// `GET /laporan/{id}`: Satu laporan dengan revisi dan lampiran.
pub fn laporan_detail(web: &Web, who: Principal, Path(id): Path<String>) -> Response {
    let Ok(rid) = id.parse::<pasopati_common::ReportId>() else {
        return (StatusCode::NOT_FOUND, "laporan tidak ditemukan").into_response();
    };
    let revisions = match crate::web::api::report_revisions(web, &who.reach, &rid) {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => return (StatusCode::NOT_FOUND, "laporan tidak ditemukan").into_response(),
        Err(e) => return internal(e),
    };
    let Some(latest) = revisions.last() else {
        return (StatusCode::NOT_FOUND, "laporan tidak ditemukan").into_response();
    };
    let names = show::Names::of(&web.state.store);
    let zone = names.zone(&latest.site_id);
    let priority = if latest.priority == pasopati_common::Priority::Urgent {
        "mendesak"
    } else {
        "biasa"
    };
    let body = html! {
        p { "UPT " b { (names.unit(&latest.site_id)) } " · kategori " (show::category(&latest.category)) " · prioritas " (priority) " · terjadi " (show::local_text(&latest.occurred_at, zone)) " · diterima pusat " (show::local_text(&latest.received_at, zone)) }
        @if let Some(reason) = &latest.retraction { p.pesan { "Laporan ditarik: " (reason) } }
        h2 { (latest.title) }
        p.teks { (latest.body) }
        h2 { "Lampiran" }
        @if latest.attachments.is_empty() { p { "Tidak ada." } }
        ul { @for a in &latest.attachments { li {
            @if a.stored { a href=(format!("/lampiran/{}", a.hash)) { (a.name) } } @else { (a.name) }
            " (" (a.media_type) ", " (a.size) " bita) " @if a.stored { "tersimpan" } @else { "belum diterima" } } } }
        h2 { "Revisi" }
        table { tr { th { "Rev." } th { "Diajukan" } th { "Judul" } th { "Ditarik" } }
            @for r in &revisions { tr { td { (r.revision) } td { (show::local_text(&r.filed_at, zone)) } td { (r.title) } td { (r.retraction.clone().unwrap_or_default()) } } }
        }
        @if who.may(crate::web::ANALYST) {
            h2 { "Jadikan draf siaran pers" }
            form method="post" action="/publikasi" { (csrf_field(&who)) input type="hidden" name="report" value=(latest.id); button type="submit" { "Buat draf" } }
        }
    };
    layout("Laporan", "/laporan", &who, body)
}
