//! The dashboard's pages, server-rendered in Bahasa Indonesia with maud. No external assets:
//! the style sheet and the few lines of JavaScript (the live feed of Peringatan, sorting the
//! Armada table) are served by the collector itself at `/static/app.css` and `/static/app.js`,
//! so the Content-Security-Policy needs no `unsafe-inline`; charts are SVG drawn here.

use super::api::{self, find_reports, internal, ListQuery};
use super::auth::Login;
use super::show::{self, Zone};
use super::{check_csrf, Principal, Web};
use crate::admin::{self, SiteState};
use crate::store::{Publication, PublicationState, Role};
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Extension;
use maud::{html, Markup, DOCTYPE};
use pasopati_common::Timestamp;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The style sheet, served at `/static/app.css`.
const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2733;background:#f4f6f8}
header{background:#123a5c;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;align-items:center;gap:1rem}
header a{color:#dfe9f3;text-decoration:none;font-weight:500}header a.aktif{color:#fff;border-bottom:2px solid #f2b134}
header .brand{font-weight:700;margin-right:1rem}header form{margin-left:auto}
main{padding:1rem 1.5rem;max-width:1200px}
h1{font-size:1.4rem;margin:.2rem 0 1rem}h2{font-size:1.1rem;margin:1.2rem 0 .5rem}
.kartu{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:.8rem}
.kartu div{background:#fff;border-radius:8px;padding:.8rem;box-shadow:0 1px 2px #0002}
.kartu b{display:block;font-size:1.8rem}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.9rem}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e3e8ee;vertical-align:top}
th{background:#e9eef3;cursor:pointer}
.urgent{color:#b00020;font-weight:600}.online{color:#137333}.buffering{color:#b06000}.offline,.revoked{color:#b00020}.silent{color:#5f6368}
.negatif{color:#b00020}.positif{color:#137333}
form.saring{display:flex;flex-wrap:wrap;gap:.4rem;margin-bottom:.8rem}input,select,textarea,button{font:inherit;padding:.3rem}
button{background:#123a5c;color:#fff;border:0;border-radius:4px;padding:.35rem .8rem;cursor:pointer}
.pesan{background:#fff3cd;padding:.5rem;border-radius:4px}
#umpan li{margin:.3rem 0}.baru{animation:sorot 2s}@keyframes sorot{from{background:#ffe08a}to{background:transparent}}
.masuk{max-width:360px;margin:3rem auto}.teks{white-space:pre-wrap}
.kotak{background:#fff;padding:.6rem;margin:.6rem 0;border-radius:6px}
.kartu small{display:block;color:#5f6368;font-size:.75rem}.usang{color:#5f6368;font-style:italic}
details.cabut summary{cursor:pointer;color:#b00020}details.cabut input{width:10rem}
@media print{header,form{display:none}body{background:#fff}}
"#;

const NAV: &[(&str, &str)] = &[
    ("/", "Ringkasan"),
    ("/laporan", "Laporan"),
    ("/cerita", "Media & Cerita"),
    ("/tren", "Tren"),
    ("/peringatan", "Peringatan"),
    ("/armada", "Armada"),
    ("/verifikasi", "Verifikasi"),
    ("/publikasi", "Publikasi"),
    ("/cakupan", "Cakupan"),
];

fn layout(title: &str, active: &str, who: &Principal, body: Markup) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="id" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — PASOPATI" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                header {
                    span.brand { "PASOPATI" }
                    @for (href, label) in NAV {
                        a href=(href) class=(if *href == active { "aktif" } else { "" }) { (label) }
                    }
                    form method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(who.csrf.clone().unwrap_or_default());
                        span { (who.username) " (" (who.role.as_str()) ") " }
                        button type="submit" { "Keluar" }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    };
    Html(page.into_string()).into_response()
}

fn csrf_field(who: &Principal) -> Markup {
    html! { input type="hidden" name="csrf" value=(who.csrf.clone().unwrap_or_default()); }
}

/// A Kanwil choice list (the 38 Kanwil of the gazetteer), `selected` chosen; the first option,
/// empty, is `all`.
fn kanwil_select(selected: Option<&str>, all: &str) -> Markup {
    html! {
        select name="kanwil" {
            option value="" { (all) }
            @for k in show::kanwil_list() { option value=(k) selected[selected == Some(k.as_str())] { (k) } }
        }
    }
}

/// How long ago an RFC 3339 time was, in the largest whole unit (`45 dtk`, `12 mnt`, `3 jam`,
/// `2 hari`).
fn age(rfc3339: &str) -> String {
    let Ok(t) = Timestamp::parse_rfc3339(rfc3339) else {
        return rfc3339.to_owned();
    };
    let secs = Timestamp::now().millis_since(t).max(0) / 1000;
    match secs {
        s if s < 60 => format!("{s} dtk"),
        s if s < 3600 => format!("{} mnt", s / 60),
        s if s < 86_400 => format!("{} jam", s / 3600),
        s => format!("{} hari", s / 86_400),
    }
}

fn sentiment_class(s: f64) -> &'static str {
    if s < -0.2 {
        "negatif"
    } else if s > 0.2 {
        "positif"
    } else {
        "netral"
    }
}

// ---- Login ----

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    /// The pre-session CSRF token of the form.
    #[serde(default)]
    csrf: Option<String>,
}

/// The login form with a fresh pre-session CSRF token: the same value goes in a cookie and
/// in a hidden field, and the login accepts only a pair that match and that this process
/// signed.
fn login_markup(web: &Web, message: Option<&str>) -> Response {
    let (token, cookie) = web.auth.login_form_token();
    let page = html! {
        (DOCTYPE)
        html lang="id" {
            head { meta charset="utf-8"; title { "Masuk — PASOPATI" } link rel="stylesheet" href="/static/app.css"; }
            body {
                main.masuk {
                    h1 { "Media Center PASOPATI" }
                    @if let Some(m) = message { p.pesan { (m) } }
                    form method="post" action="/login" {
                        input type="hidden" name="csrf" value=(token);
                        p { label { "Nama pengguna" br; input name="username" autocomplete="username" required; } }
                        p { label { "Kata sandi" br; input name="password" type="password" autocomplete="current-password" required; } }
                        button type="submit" { "Masuk" }
                    }
                }
            }
        }
    };
    ([(header::SET_COOKIE, cookie)], Html(page.into_string())).into_response()
}

pub async fn login_page(State(web): State<Arc<Web>>) -> Response {
    login_markup(&web, None)
}

/// The style sheet of every page.
pub async fn app_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

/// The script of every page: the live feed where the page has one, sorting of `table.urut`.
pub async fn app_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

fn throttled(web: &Web) -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, "900")],
        login_markup(
            web,
            Some("Terlalu banyak percobaan gagal. Coba lagi 15 menit lagi."),
        ),
    )
        .into_response()
}

/// Signs in. The attempt is counted before the password is verified (so parallel attempts
/// cannot all slip under the limit), and the verification waits for a turn at Argon2.
pub async fn login(
    State(web): State<Arc<Web>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !web.auth.login_form_ok(&headers, form.csrf.as_deref()) {
        return (
            StatusCode::FORBIDDEN,
            login_markup(
                &web,
                Some("Formulir masuk sudah tidak berlaku atau bukan dari halaman ini. Silakan coba lagi."),
            ),
        )
            .into_response();
    }
    let username = form.username.trim().to_owned();
    let client = web.auth.client_address(peer, &headers);
    let Some(attempt) = web.auth.admit(&username, client) else {
        return throttled(&web);
    };
    let Some(turn) = web.auth.turn().await else {
        web.auth.give_back(&attempt);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            login_markup(&web, Some("Server sedang sibuk. Coba lagi sebentar lagi.")),
        )
            .into_response();
    };
    let store = web.state.store.clone();
    let w = web.clone();
    let password = form.password;
    // Argon2 takes tens of milliseconds: keep it off the async workers, holding the turn.
    let verified = tokio::task::spawn_blocking(move || {
        let user = w.auth.verify(&store, &username, &password);
        drop(turn);
        user
    })
    .await;
    let user = match verified {
        Ok(user) => user,
        Err(e) => return internal(e),
    };
    match web.auth.finish(&web.state.store, &attempt, user) {
        Login::Ok { cookie } => ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response(),
        Login::Failed(e) => internal(e),
        Login::Wrong => (
            StatusCode::UNAUTHORIZED,
            login_markup(&web, Some("Nama pengguna atau kata sandi salah.")),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

pub async fn logout(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Err(r) = check_csrf(&who, &headers, form.csrf.as_deref()) {
        return r;
    }
    match web.auth.logout(&web.state.store, &headers) {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response(),
        Err(e) => internal(e),
    }
}

// ---- Ringkasan ----

pub async fn ringkasan(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
) -> Response {
    let now = Timestamp::now().0;
    let today = pasopati_analysis::insight::date_string(pasopati_analysis::insight::day_of(now));
    let q = ListQuery {
        since: Some(today.clone()),
        until: Some(today.clone()),
        limit: Some(1000),
        ..ListQuery::default()
    };
    let (todays, total_today) = match find_reports(&web, &q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let urgent: Vec<_> = todays
        .iter()
        .filter(|r| r.report.priority == pasopati_common::Priority::Urgent)
        .collect();
    let sites = match api::site_views(&web) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let names = show::Names::of(&web.state.store);
    let offline: Vec<_> = sites.iter().filter(|s| s.state == "offline").collect();
    let alerts = api::alert_list(&web).unwrap_or_default();
    let all_stories = web.state.newsroom.stories().unwrap_or_default();
    let top = top_media_stories(&all_stories, 10);
    let mean =
        (!top.is_empty()).then(|| top.iter().map(|s| s.sentiment).sum::<f64>() / top.len() as f64);
    // Colour marks a problem only: an urgent report, an offline site, a spike, negative tone.
    let problem = |bad: bool| if bad { "urgent" } else { "" };
    let body = html! {
        div.kartu {
            div { "Laporan UPT hari ini" b { (total_today) } small { "terjadi " (today) " (WIB)" } }
            div { "Laporan mendesak hari ini" b class=(problem(!urgent.is_empty())) { (urgent.len()) } small { "prioritas mendesak, dari laporan hari ini" } }
            div { "Lonjakan" b class=(problem(!alerts.is_empty())) { (alerts.len()) } small { "media dan laporan, seluruh data; lihat Peringatan" } }
            div { "UPT offline sekarang" b class=(problem(!offline.is_empty())) { (offline.len()) } small { "dari " (sites.len()) " UPT terdaftar" } }
            div { "Sentimen media" b class=(problem(mean.is_some_and(|m| m < -0.2))) { (mean.map_or_else(|| "–".to_owned(), |m| format!("{m:+.2}"))) }
                  small { "rata-rata " (top.len()) " cerita media teratas di bawah (−1 negatif … +1 positif)" } }
        }
        h2 { "Laporan mendesak hari ini" }
        @if urgent.is_empty() { p { "Tidak ada." } }
        ul { @for r in &urgent { li.urgent { a href=(format!("/laporan/{}", r.report.id)) { (r.report.title) } " — " (names.unit(r.site.as_str())) " " (names.time(r.site.as_str(), r.report.occurred_at.0)) } } }
        h2 { "Cerita media teratas" }
        p { small { "Cerita dengan item media terbanyak dari seluruh media yang tersimpan; salinan sindikasi tidak dihitung. Laporan UPT yang terkait disebut, tetapi tidak menaikkan peringkat." } }
        @if top.is_empty() { p { "Belum ada item media." } }
        @else {
            table { tr { th { "Cerita" } th { "Item media" } th { "Laporan UPT terkait" } th { "UPT" } th { "Terakhir" } th { "Sentimen" } }
                @for s in &top {
                    tr { td { (s.title) } td { (s.items.len()) } td { (s.reports.len()) } td { (names.units(&s.upt)) } td { (show::local_text(&s.last_seen, Zone::Wib)) }
                         td class=(problem(s.sentiment < -0.2)) { (format!("{:+.2}", s.sentiment)) } }
                }
            }
        }
        h2 { "UPT offline sekarang" }
        @if offline.is_empty() { p { "Tidak ada." } }
        ul { @for s in offline.iter().take(20) {
            @let zone = Zone::of_kanwil(&s.kanwil);
            li { (s.name) " — kontak terakhir " (s.last_seen_at.as_deref().map_or_else(|| "belum pernah".to_owned(), |t| show::local_text(t, zone))) } } }
    };
    layout("Ringkasan", "/", &who, body)
}

/// The stories the media covered most: only stories with at least one media item, ranked by
/// their media items (syndicated copies already folded), then by recency. Site reports joined
/// to a story never raise its rank.
pub(crate) fn top_media_stories(
    stories: &[pasopati_analysis::batch::StoryResult],
    n: usize,
) -> Vec<&pasopati_analysis::batch::StoryResult> {
    let mut top: Vec<&pasopati_analysis::batch::StoryResult> =
        stories.iter().filter(|s| !s.items.is_empty()).collect();
    top.sort_by(|a, b| {
        b.items
            .len()
            .cmp(&a.items.len())
            .then(b.last_seen.cmp(&a.last_seen))
    });
    top.truncate(n);
    top
}

// ---- Laporan ----

pub async fn laporan(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Response {
    let (found, total) = match find_reports(&web, &q) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let sites = web.state.store.sites().unwrap_or_default();
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
            (kanwil_select(q.kanwil.as_deref(), "Semua Kanwil"))
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
        @if next < total { p { a href=(format!("/laporan?{}", next_query.to_query_string())) { "Berikutnya →" } } }
    };
    layout("Laporan", "/laporan", &who, body)
}

pub async fn laporan_detail(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let Ok(rid) = id.parse::<pasopati_common::ReportId>() else {
        return (StatusCode::NOT_FOUND, "laporan tidak ditemukan").into_response();
    };
    let revisions = match admin::revisions(&web.state.store, &rid) {
        Ok(r) if !r.is_empty() => r,
        Ok(_) => return (StatusCode::NOT_FOUND, "laporan tidak ditemukan").into_response(),
        Err(e) => return internal(e),
    };
    let Some(latest) = revisions.last() else {
        return (StatusCode::NOT_FOUND, "laporan tidak ditemukan").into_response();
    };
    let names = show::Names::of(&web.state.store);
    let zone = names.zone(&latest.site_id);
    let priority = if latest.priority == "urgent" {
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
        @if who.role >= Role::Analyst {
            h2 { "Jadikan draf siaran pers" }
            form method="post" action="/publikasi" { (csrf_field(&who)) input type="hidden" name="report" value=(latest.id); button type="submit" { "Buat draf" } }
        }
    };
    layout("Laporan", "/laporan", &who, body)
}

// ---- Media & Cerita ----

pub async fn cerita(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Response {
    let all_stories = match web.state.newsroom.stories() {
        Ok(s) => s,
        Err(e) => return internal(e),
    };
    let site = q.site.as_deref().filter(|s| !s.is_empty());
    let mut stories: Vec<&pasopati_analysis::batch::StoryResult> = all_stories
        .iter()
        .filter(|s| !s.items.is_empty())
        .filter(|s| site.is_none_or(|site| s.upt.iter().any(|u| u == site)))
        .collect();
    stories.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
    let total = stories.len();
    let names = show::Names::of(&web.state.store);
    let body = html! {
        p { (total) " cerita dari media; salinan sindikasi dilipat. " a href="/api/v1/stories?format=csv&limit=1000" { "Unduh CSV" } }
        @for s in stories.iter().skip(q.offset()).take(q.limit()) {
            section.kotak {
                b { (s.title) } " " span class=(sentiment_class(s.sentiment)) { (format!("{:+.2}", s.sentiment)) }
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

// ---- Tren ----

fn bars(title: &str, data: &[(String, u64)]) -> Markup {
    let max = data.iter().map(|d| d.1).max().unwrap_or(1).max(1) as f64;
    let height = 22 * data.len().max(1) + 10;
    html! {
        h2 { (title) }
        svg width="640" height=(height) role="img" aria-label=(title) {
            @for (i, (label, v)) in data.iter().enumerate() {
                text x="0" y=(i * 22 + 15) font-size="12" { (label) }
                rect x="200" y=(i * 22 + 3) height="16" width=(format!("{:.0}", 380.0 * *v as f64 / max)) fill="#2f6f9f" {}
                text x=(format!("{:.0}", 205.0 + 380.0 * *v as f64 / max)) y=(i * 22 + 15) font-size="12" { (v) }
            }
        }
    }
}

pub async fn tren(State(web): State<Arc<Web>>, Extension(who): Extension<Principal>) -> Response {
    let insights = match web.state.newsroom.insights(None) {
        Ok(i) => i,
        Err(e) => return internal(e),
    };
    let daily = insights["trends"]["daily"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let recent: Vec<&serde_json::Value> = daily
        .iter()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let spikes: std::collections::HashSet<String> = insights["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["kind"] == "news")
        .filter_map(|a| a["period"].as_str().map(str::to_owned))
        .collect();
    let volume: Vec<(String, u64)> = recent
        .iter()
        .map(|d| {
            let p = d["period"].as_str().unwrap_or_default().to_owned();
            let mark = if spikes.contains(&p) {
                " ▲ lonjakan"
            } else {
                ""
            };
            (
                format!("{p}{mark}"),
                d["total"]["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let sum_by = |key: &str, label: &dyn Fn(&str) -> String| -> Vec<(String, u64)> {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for d in &recent {
            for (k, v) in d[key].as_object().into_iter().flatten() {
                *m.entry(label(k)).or_default() += v["count"].as_u64().unwrap_or(0);
            }
        }
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.1));
        v.truncate(15);
        v
    };
    let period = |d: Option<&&serde_json::Value>| {
        d.and_then(|d| d["period"].as_str())
            .unwrap_or("–")
            .to_owned()
    };
    let (first, last) = (period(recent.first()), period(recent.last()));
    let terms: Vec<(String, u64)> = insights["trends"]["top_terms"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["term"].as_str().unwrap_or_default().to_owned(),
                t["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let body = html! {
        p { "Item media dan laporan UPT " b { "digabung" } ", 30 hari terakhir yang ada datanya (tanggal WIB); " (first) " – " (last) ". ▲ menandai hari dengan lonjakan. "
            "Kategori laporan UPT dipilih pelapornya; kategori item media ditebak dari kata kuncinya. Untuk laporan UPT saja, lihat " a href="/laporan" { "Laporan" } "." }
        (bars("Item media dan laporan per hari", &volume))
        (bars("Per kategori (media dan laporan)", &sum_by("by_category", &|k| show::category(k))))
        (bars("Per Kanwil (media dan laporan)", &sum_by("by_kanwil", &|k| k.to_owned())))
        (bars("Per sumber", &sum_by("by_source", &|k| k.to_owned())))
        (bars("Per sentimen (media dan laporan)", &sum_by("by_sentiment", &|k| k.to_owned())))
        (bars("Istilah teratas (7 hari)", &terms))
    };
    layout("Tren", "/tren", &who, body)
}

// ---- Peringatan ----

/// The script of every page, served at `/static/app.js`: the live feed of Peringatan (where
/// the page has `#umpan`) and sorting of the tables marked `urut` (Armada).
const APP_JS: &str = r#"
(function(){
  var list=document.getElementById('umpan');
  function add(text,cls){var li=document.createElement('li');li.textContent=text;li.className='baru '+(cls||'');list.insertBefore(li,list.firstChild);}
  if(list){
    var es=new EventSource('/api/v1/events');
    es.addEventListener('report',function(e){var d=JSON.parse(e.data);add((d.priority==='urgent'?'MENDESAK: ':'Laporan: ')+d.title+' — '+(d.site_name||d.site_id)+' ('+(d.received_local||d.received_at)+')',d.priority==='urgent'?'urgent':'');});
    es.addEventListener('site',function(e){var d=JSON.parse(e.data);if(d.state){add('UPT '+(d.name||d.id)+' sekarang '+d.state,d.state);}});
    es.addEventListener('alert',function(e){var d=JSON.parse(e.data);add('Lonjakan: '+d.label+' '+d.count+' item ('+d.period+')','urgent');});
    es.onopen=function(){document.getElementById('status').textContent='tersambung';};
    es.onerror=function(){document.getElementById('status').textContent='menyambung ulang…';};
  }
  document.querySelectorAll('table.urut th').forEach(function(th){th.addEventListener('click',function(){
    var i=th.cellIndex,t=th.closest('table'),rows=Array.from(t.querySelectorAll('tr')).slice(1),asc=th.dataset.asc!=='1';th.dataset.asc=asc?'1':'0';
    rows.sort(function(a,b){var x=a.children[i].textContent,y=b.children[i].textContent,nx=parseFloat(x),ny=parseFloat(y);
      var c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:x.localeCompare(y);return asc?c:-c;});rows.forEach(function(r){t.appendChild(r);});});});
})();
"#;

pub async fn peringatan(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
) -> Response {
    let alerts = api::alert_list(&web).unwrap_or_default();
    let urgent = api::find_reports_counting(
        &web,
        &ListQuery {
            priority: Some("urgent".into()),
            limit: Some(20),
            ..ListQuery::default()
        },
        false,
    )
    .map(|x| x.0)
    .unwrap_or_default();
    let names = show::Names::of(&web.state.store);
    let body = html! {
        p { "Umpan langsung (" span #status { "menyambung…" } "): laporan baru, perubahan keadaan UPT dan lonjakan muncul di sini tanpa memuat ulang." }
        ul #umpan {
            @for r in &urgent { li.urgent { "MENDESAK: " (r.report.title) " — " (names.unit(r.site.as_str())) " (" (names.time(r.site.as_str(), r.received_at.0)) ")" } }
        }
        h2 { "Lonjakan" }
        table { tr { th { "Periode" } th { "Seri" } th { "Jumlah" } th { "Rata-rata dasar" } th { "Sumber" } th { "Istilah" } }
            @for a in &alerts { tr { td { (a["period"].as_str().unwrap_or_default()) } td { (a["label"].as_str().unwrap_or_default()) } td { (a["count"]) } td { (a["baseline_mean"]) } td { (a["top_sources"].as_array().map(|v| v.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()) } td { (a["top_terms"].as_array().map(|v| v.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(", ")).unwrap_or_default()) } } }
        }
    };
    layout("Peringatan", "/peringatan", &who, body)
}

// ---- Armada ----

/// The Indonesian word for a site state.
pub async fn armada(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Response {
    let mut sites = match api::site_views(&web) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut kanwil: BTreeMap<String, HashMap<SiteState, usize>> = BTreeMap::new();
    for s in &sites {
        *kanwil
            .entry(s.kanwil.clone())
            .or_default()
            .entry(s.state)
            .or_default() += 1;
    }
    if let Some(k) = q.kanwil.as_deref().filter(|s| !s.is_empty()) {
        sites.retain(|s| s.kanwil == k);
    }
    if let Some(st) = q.state.as_deref().filter(|s| !s.is_empty()) {
        sites.retain(|s| s.state == st);
    }
    let states = SiteState::ALL;
    let admin = who.role >= Role::Admin;
    let body = html! {
        form.saring method="get" action="/armada" {
            select name="state" { option value="" { "Semua keadaan" } @for st in states { option value=(st.as_str()) selected[q.state.as_deref() == Some(st.as_str())] { (st.label()) } } }
            (kanwil_select(q.kanwil.as_deref(), "Semua Kanwil"))
            button type="submit" { "Saring" }
        }
        p { small { "Online: tersambung sekarang. Offline: tidak ada sambungan. Menumpuk: antrean bertambah. Senyap: tersambung tetapi tanpa laporan. "
            "Antrean: laporan yang belum dikirim menurut detak (heartbeat) terakhir; \u{201c}usang\u{201d} bila pusat sudah menerima laporan sesudah detak itu. Waktu menurut zona UPT." } }
        table.urut #armada { tr { th { "UPT" } th { "Kanwil" } th { "Keadaan" } th { "Antrean" } th { "Umur laporan tertua yang belum terkirim" } th { "Sinkron terakhir" } th { "Versi agen" } th { "Disk bebas (GiB)" } th { "Selisih jam (ms)" } @if admin { th { "" } } }
            @for s in &sites {
                @let zone = Zone::of_kanwil(&s.kanwil);
                @let stale = s.backlog_stale && s.backlog.is_some_and(|b| b > 0);
                tr data-site=(s.id) { td { (s.name) } td { (s.kanwil) } td class=(s.state.as_str()) { (s.state.label()) }
                     td { @if let Some(b) = s.backlog { @if stale { span.usang title=(format!("dilaporkan {}; ada laporan tersimpan sesudahnya", s.heartbeat_at.as_deref().map(|t| show::local_text(t, zone)).unwrap_or_default())) { (b) " (usang)" } } @else { (b) } } }
                     td { @if !stale { (s.oldest_unsent_at.as_deref().map(age).unwrap_or_default()) } } td { (s.last_sync_at.as_deref().map(|t| show::local_text(t, zone)).unwrap_or_else(|| "belum pernah".into())) } td { (s.agent_version.clone().unwrap_or_default()) }
                     td { (s.disk_free_bytes.map(|b| format!("{:.1}", b as f64 / 1_073_741_824.0)).unwrap_or_default()) } td { (s.clock_offset_ms.map(|c| c.to_string()).unwrap_or_default()) }
                     @if admin { td { @if s.state != "revoked" {
                        details.cabut { summary { "Cabut…" }
                            form method="post" action=(format!("/armada/{}/cabut", s.id)) { (csrf_field(&who))
                                label { "Ketik " code { (s.id) } " untuk mencabut sertifikat " (s.name) ": " input name="konfirmasi" autocomplete="off" required; }
                                button type="submit" { "Cabut" } } } } } } }
            }
        }
        h2 { "Ringkasan per Kanwil" }
        table.urut { tr { th { "Kanwil" } @for st in states { th { (st.label()) } } }
            @for (k, counts) in &kanwil { tr { td { (k) } @for st in states { td class=(if counts.get(&st).copied().unwrap_or(0) > 0 { st.as_str() } else { "" }) { (counts.get(&st).copied().unwrap_or(0)) } } } }
        }
    };
    layout("Armada", "/armada", &who, body)
}

#[derive(Deserialize)]
pub struct RevokeForm {
    csrf: Option<String>,
    /// The site id, typed by the admin to confirm.
    #[serde(default)]
    konfirmasi: String,
}

/// Revokes a site, only when the form carries the site's id typed in `konfirmasi`.
pub async fn armada_cabut(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Response {
    if let Err(r) = check_csrf(&who, &headers, form.csrf.as_deref()) {
        return r;
    }
    let Ok(site) = pasopati_common::SiteId::new(&id) else {
        return (StatusCode::BAD_REQUEST, "id UPT tidak sah").into_response();
    };
    if form.konfirmasi.trim() != site.as_str() {
        return (
            StatusCode::BAD_REQUEST,
            layout(
                "Armada",
                "/armada",
                &who,
                html! {
                    p.pesan { "Sertifikat " b { (site.as_str()) } " tidak dicabut: ketik id UPT itu persis untuk mengonfirmasi pencabutan. " a href="/armada" { "Kembali ke Armada" } }
                },
            ),
        )
            .into_response();
    }
    match admin::site_revoke(
        &web.state.store,
        &site,
        &format!("dashboard:{}", who.username),
    ) {
        Ok(_) => {
            web.state.close_site(&site);
            Redirect::to("/armada").into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

// ---- Verifikasi ----

pub async fn verifikasi(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
) -> Response {
    let claims = match admin::claims(&web.state.store) {
        Ok(c) => c,
        Err(e) => return internal(e),
    };
    let stories = web.state.newsroom.stories().unwrap_or_default();
    let conflicts: Vec<(&String, &pasopati_analysis::insight::FigureConflict)> = stories
        .iter()
        .flat_map(|s| s.figure_conflicts.iter().map(move |c| (&s.title, c)))
        .collect();
    let editor = who.role >= Role::Analyst;
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
                        select name="verdict" { @for v in ["benar", "salah", "menyesatkan", "belum_terverifikasi"] { option value=(v) { (v) } } }
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
    csrf: Option<String>,
    claim: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    item: String,
}

pub async fn verifikasi_tambah(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Form(form): Form<ClaimForm>,
) -> Response {
    if let Err(r) = check_csrf(&who, &headers, form.csrf.as_deref()) {
        return r;
    }
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
    csrf: Option<String>,
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

pub async fn verifikasi_vonis(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Form(form): Form<VerdictForm>,
) -> Response {
    if let Err(r) = check_csrf(&who, &headers, form.csrf.as_deref()) {
        return r;
    }
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

// ---- Publikasi ----

pub async fn publikasi(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
) -> Response {
    let publications = match web.state.store.publications() {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let editor = who.role >= Role::Analyst;
    let body = html! {
        p { "Draf dibuat dari halaman laporan. Yang disetujui terbit di " a href="/feed/atom.xml" { "Atom" } " dan " a href="/feed/feed.json" { "JSON Feed" } ". " a href="/publikasi/ringkasan-harian" { "Ringkasan harian (cetak)" } }
        @for p in publications.iter().rev() {
            section.kotak id=(format!("p{}", p.number)) {
                b { (p.title) } " — " (match p.state { PublicationState::Draft => "draf", PublicationState::Approved => "terbit" })
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
    csrf: Option<String>,
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

pub async fn publikasi_draf(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Form(form): Form<DraftForm>,
) -> Response {
    if let Err(r) = check_csrf(&who, &headers, form.csrf.as_deref()) {
        return r;
    }
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
    let site = pasopati_common::SiteId::new(&latest.site_id)
        .ok()
        .and_then(|s| web.state.store.site(&s).ok().flatten());
    let (name, kanwil) = site
        .map(|s| (s.name, s.kanwil))
        .unwrap_or_else(|| (latest.site_id.clone(), String::new()));
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

pub async fn publikasi_setujui(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    headers: HeaderMap,
    Path(id): Path<u64>,
    Form(form): Form<CsrfOnly>,
) -> Response {
    if let Err(r) = check_csrf(&who, &headers, form.csrf.as_deref()) {
        return r;
    }
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

pub async fn ringkasan_harian(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    Query(q): Query<DigestQuery>,
) -> Response {
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
    let (reports, total) = match find_reports(&web, &lq) {
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

// ---- Cakupan ----

pub async fn cakupan(
    State(web): State<Arc<Web>>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Response {
    let days = q.limit.map(|d| d as i64);
    let insights = match web.state.newsroom.insights(days) {
        Ok(i) => i,
        Err(e) => return internal(e),
    };
    let c = &insights["coverage"];
    let names = show::Names::of(&web.state.store);
    let body = html! {
        p { "Per " (show::local_text(c["as_of"].as_str().unwrap_or_default(), Zone::Wib)) ", " (c["days"]) " hari terakhir: " b { (c["silent_upt_count"]) } " UPT tanpa laporan dan tanpa pemberitaan." }
        h2 { "Per Kanwil" }
        table { tr { th { "Kanwil" } th { "UPT" } th { "Tanpa kabar" } th { "Kanwil senyap" } }
            @for k in c["kanwil"].as_array().into_iter().flatten() { tr { td { (k["kanwil"].as_str().unwrap_or_default()) } td { (k["upt_total"]) } td { (k["upt_silent"]) } td { @if k["silent"] == true { "ya" } } } }
        }
        h2 { "Diberitakan negatif, tanpa laporan" }
        ul { @for n in c["negative_without_reports"].as_array().into_iter().flatten() { li { (names.unit(n["upt"].as_str().unwrap_or_default())) ": " (n["items"]) " item, " (n["negative_share"]) " negatif" } } }
        h2 { "UPT tanpa kabar" }
        p { (c["silent_upt"].as_array().map(|v| v.iter().filter_map(|x| x.as_str()).map(|u| names.unit(u)).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
    };
    layout("Cakupan", "/cakupan", &who, body)
}
