//! Publikasi: press releases drafted from a report, approved for the feeds, and the printable
//! daily digest.

use super::{csrf_field, kanwil_select, layout, CsrfOnly};
use crate::admin::{self};
use crate::store::{Publication, PublicationState};
use crate::web::api::{find_reports, internal, ListQuery};
use crate::web::show::{self, Zone};
use crate::web::{Principal, Web};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use pasopati_common::Timestamp;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `GET /publikasi`: Publikasi.
pub fn publikasi(web: &Web, who: Principal, _: ()) -> Response {
    let publications = match web.state.store.publications() {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let editor = who.may(crate::web::ANALYST);
    let body = html! {
        p { "Draf dibuat dari halaman laporan. Yang disetujui terbit di " a href="/feed/atom.xml" { "Atom" } " dan " a href="/feed/feed.json" { "JSON Feed" } ". " a href="/publikasi/ringkasan-harian" { "Ringkasan harian (cetak)" } }
        @for p in publications.iter().rev() {
            section.kotak id=(format!("p{}", p.number)) {
                b { (p.title) } " — " (p.state.label())
                p.teks { (p.body) }
                div { "Laporan: " (p.reports.join(", ")) " · disusun " (p.drafted_by) @if let Some(a) = &p.approved_by { " · disetujui " (a) } }
                @if editor && p.state == PublicationState::Draft {
                    form method="post" action=(format!("/publikasi/{}/setujui", p.number)) { (csrf_field(&who)) button type="submit" { "Setujui dan terbitkan" } }
                }
            }
        }
    };
    layout("Publikasi", "/publikasi", &who, body)
}

#[derive(Deserialize)]
pub struct DraftForm {
    pub(super) csrf: Option<String>,
    report: String,
}

/// The press-release template: a dateline, the report in the third person, and the standard
/// closing of the directorate's public relations.
fn press_release(site_name: &str, kanwil: &str, r: &admin::ReportView) -> (String, String) {
    let title = format!("{}: {}", site_name, r.title);
    // The date of the site's own calendar (a report at 01:00 WIB is that day's, not the UTC
    // day before).
    let local = show::local_text(&r.occurred_at, Zone::of_kanwil(kanwil));
    let date = local.get(..10).unwrap_or(&local);
    let body = format!(
        "{kanwil}, {date} — {site_name} menyampaikan informasi berikut.\n\n{}\n\n\
         Informasi ini bersumber dari laporan resmi {site_name} dan telah diperiksa oleh Media \
         Center PASOPATI, Direktorat Jenderal Pemasyarakatan. Keterangan lebih lanjut dapat \
         diperoleh melalui Humas Ditjenpas.",
        r.body
    );
    (title, body)
}

/// `POST /publikasi`: Buat draf siaran pers dari laporan.
pub fn publikasi_draf(web: &Web, who: Principal, _: (), form: DraftForm) -> Response {
    let Ok(id) = form.report.trim().parse::<pasopati_common::ReportId>() else {
        return (StatusCode::BAD_REQUEST, "ID laporan tidak sah").into_response();
    };
    let latest = match admin::revisions(&web.state.store, &id) {
        Ok(mut r) if !r.is_empty() => r.remove(r.len() - 1),
        Ok(_) => return (StatusCode::NOT_FOUND, "laporan tidak ditemukan").into_response(),
        Err(e) => return internal(e),
    };
    if latest.retraction.is_some() {
        return (StatusCode::BAD_REQUEST, "laporan ini sudah ditarik").into_response();
    }
    let (name, kanwil) = admin::site_name_and_kanwil(&web.state.store, &latest.site_id);
    let (title, body) = press_release(&name, &kanwil, &latest);
    let p = Publication {
        number: 0,
        title,
        body,
        reports: vec![latest.id.clone()],
        kanwil: Some(kanwil).filter(|k| !k.is_empty()),
        state: PublicationState::Draft,
        drafted_by: who.username.clone(),
        drafted_at: Timestamp::now().0,
        approved_by: None,
        approved_at: None,
    };
    match web
        .state
        .store
        .add_publication(p, &format!("dashboard:{}", who.username))
    {
        Ok(n) => Redirect::to(&format!("/publikasi#p{n}")).into_response(),
        Err(e) => internal(e),
    }
}

/// `POST /publikasi/{id}/setujui`: Setujui publikasi.
pub fn publikasi_setujui(web: &Web, who: Principal, Path(id): Path<u64>, _: CsrfOnly) -> Response {
    match web
        .state
        .store
        .approve_publication(id, &format!("dashboard:{}", who.username))
    {
        Ok(Some(_)) => Redirect::to(&format!("/publikasi#p{id}")).into_response(),
        Ok(None) => (StatusCode::NOT_FOUND, "publikasi tidak ditemukan").into_response(),
        Err(e) => internal(e),
    }
}

#[derive(Deserialize)]
pub struct DigestQuery {
    tanggal: Option<String>,
    kanwil: Option<String>,
}

/// `GET /publikasi/ringkasan-harian`: Ringkasan harian (cetak).
pub fn ringkasan_harian(web: &Web, who: Principal, Query(q): Query<DigestQuery>) -> Response {
    let day = q
        .tanggal
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| {
            pasopati_analysis::insight::date_string(pasopati_analysis::insight::day_of(
                Timestamp::now().0,
            ))
        });
    let lq = ListQuery {
        since: Some(day.clone()),
        until: Some(day.clone()),
        kanwil: q.kanwil.clone().filter(|k| !k.is_empty()),
        limit: Some(1000),
        ..ListQuery::default()
    };
    let (reports, total) = match find_reports(&web.state, &who.reach, &lq) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let names = show::Names::of(&web.state.store);
    let mut by_kanwil: BTreeMap<String, Vec<&crate::store::StoredReport>> = BTreeMap::new();
    for r in &reports {
        by_kanwil
            .entry(
                names
                    .kanwil(r.site.as_str())
                    .unwrap_or_else(|| "(tanpa Kanwil)".into()),
            )
            .or_default()
            .push(r);
    }
    let mut by_category: BTreeMap<String, usize> = BTreeMap::new();
    for r in &reports {
        *by_category
            .entry(show::category(&r.report.category))
            .or_default() += 1;
    }
    let scope = q
        .kanwil
        .clone()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "Nasional".into());
    let body = html! {
        form.saring method="get" { input name="tanggal" type="date" value=(day); (kanwil_select(q.kanwil.as_deref(), "Nasional (semua Kanwil)")) button type="submit" { "Tampilkan" } }
        p { b { (scope) } " · " (day) " (menurut tanggal kejadian, WIB) · " (total) " laporan UPT" }
        table { tr { th { "Kategori" } th { "Laporan" } } @for (c, n) in &by_category { tr { td { (c) } td { (n) } } } }
        @for (k, list) in &by_kanwil {
            h2 { (k) }
            ul { @for r in list { li class=(if r.report.priority == pasopati_common::Priority::Urgent { "urgent" } else { "" }) { (names.unit(r.site.as_str())) ", " (names.time(r.site.as_str(), r.report.occurred_at.0)) ": " (r.report.title) } } }
        }
    };
    layout("Ringkasan harian", "/publikasi", &who, body)
}
