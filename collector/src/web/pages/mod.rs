//! The dashboard's pages, server-rendered in Bahasa Indonesia with maud. No external assets:
//! the style sheet and the few lines of JavaScript (the live feed of Peringatan, sorting the
//! Armada and Sumber tables) are served by the collector itself at `/static/app.css` and `/static/app.js`,
//! so the Content-Security-Policy needs no `unsafe-inline`; charts are SVG drawn here.
//!
//! One file per page (or per small group of related pages); this file holds what every page
//! shares: the layout with its navigation, the CSRF field, the Kanwil choice list, the style
//! sheet and the script.

mod armada;
mod cakupan;
mod cerita;
mod laporan;
mod login;
mod pagi;
mod peringatan;
mod peta;
mod publikasi;
mod ringkasan;
mod risiko;
mod sumber;
mod tanggapan;
mod tren;
mod verifikasi;

pub use armada::{armada, armada_cabut, armada_token, RevokeForm};
pub use cakupan::cakupan;
pub use cerita::{
    cerita, cerita_batal, cerita_detail, cerita_gabung, cerita_pisah, MergeForm, SplitForm,
};
pub use laporan::{laporan, laporan_detail};
pub use login::{login, login_page, logout, LoginForm};
pub use pagi::{pagi, MorningQuery};
pub use peringatan::peringatan;
pub use publikasi::{
    publikasi, publikasi_draf, publikasi_setujui, ringkasan_harian, DigestQuery, DraftForm,
};
pub use ringkasan::ringkasan;
pub use risiko::risiko;
pub use sumber::{state as source_state, sumber};
pub use tanggapan::{tanggapan_draf, tanggapan_kirim, tanggapan_setujui, ResponseForm};
pub use tren::tren;
pub use verifikasi::{verifikasi, verifikasi_tambah, verifikasi_vonis, ClaimForm, VerdictForm};

use super::show;
use super::{PostedForm, Principal};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

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
tr.gagal td{color:#b00020}details.cabut summary{cursor:pointer;color:#b00020}details.cabut input{width:10rem}
@media print{header,form{display:none}body{background:#fff}}
"#;

const NAV: &[(&str, &str)] = &[
    ("/", "Ringkasan"),
    ("/pagi", "Pagi"),
    ("/laporan", "Laporan"),
    ("/cerita", "Media & Cerita"),
    ("/tren", "Tren"),
    ("/peringatan", "Peringatan"),
    ("/armada", "Armada"),
    ("/verifikasi", "Verifikasi"),
    ("/publikasi", "Publikasi"),
    ("/cakupan", "Cakupan"),
    ("/risiko", "Risiko"),
    ("/sumber", "Sumber"),
];

fn layout(title: &str, active: &str, who: &Principal, body: Markup) -> Response {
    let page = pasopati_common::html::page(
        &format!("{title} — PASOPATI"),
        html! {
            link rel="stylesheet" href="/static/app.css";
            script src="/static/app.js" defer {}
        },
        html! {
            header {
                span.brand { "PASOPATI" }
                // Only the pages the user may open.
                @for (href, label) in NAV.iter().filter(|(href, _)| may_open(who, href)) {
                    a href=(href) class=(if *href == active { "aktif" } else { "" }) { (label) }
                }
                form method="post" action="/logout" {
                    (csrf_field(who))
                    span { (who.username) " (" (who.role.describe()) ") " }
                    button type="submit" { "Keluar" }
                }
            }
            main { h1 { (title) } (body) }
        },
    );
    Html(page.into_string()).into_response()
}

/// Whether the page at `path` would let the user in.
fn may_open(who: &Principal, path: &str) -> bool {
    crate::web::ROUTES
        .iter()
        .find(|r| r.method == "GET" && r.path == path)
        .is_some_and(|r| who.may(r.access))
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

/// The style sheet of every page.
pub async fn app_css() -> Response {
    static SHEET: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("{STYLE}{}", peta::css()));
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        SHEET.as_str(),
    )
        .into_response()
}

/// The script of every page: the live feed where the page has one, sorting of `table.urut`.
pub async fn app_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

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

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

/// Every form the pages post carries its CSRF token in a `csrf` field.
macro_rules! posted_forms {
    ($($form:ty),* $(,)?) => {$(
        impl PostedForm for $form {
            fn csrf(&self) -> Option<&str> {
                self.csrf.as_deref()
            }
        }
    )*};
}

posted_forms!(
    CsrfOnly,
    cerita::MergeForm,
    cerita::SplitForm,
    armada::RevokeForm,
    publikasi::DraftForm,
    verifikasi::ClaimForm,
    verifikasi::VerdictForm,
    tanggapan::ResponseForm,
);
