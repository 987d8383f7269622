//! Armada: the state of every site (filterable, sortable, with a summary per Kanwil), the
//! rollout of an agent release (its waves, each site's progress, and why it paused), and
//! revoking a site, which needs its id typed.

use super::{csrf_field, kanwil_select, layout, CsrfOnly};
use crate::admin::{self, SiteState};
use crate::web::api::{self, ListQuery};
use crate::web::show::{self, Zone};
use crate::web::{Principal, Web};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use pasopati_common::Timestamp;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

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

/// A rollout's progress of a site, in words.
fn progress_label(p: crate::fleet::rollout::SiteProgress) -> &'static str {
    use crate::fleet::rollout::SiteProgress as P;
    match p {
        P::Waiting => "menunggu gelombangnya",
        P::Offered => "ditawarkan",
        P::Downloading => "mengunduh",
        P::Installed => "terpasang, memulai ulang",
        P::Healthy => "sehat",
        P::RolledBack => "kembali ke versi sebelumnya",
        P::Refused => "menolak",
    }
}

/// The rollout of an agent release, if one was started: its state, why it paused, each wave's
/// sites by progress, and the sites that went back or refused, with their reasons.
fn rollout_section(web: &Web) -> maud::Markup {
    use crate::fleet::rollout::{self, RolloutState, SiteProgress};
    let store = &web.state.store;
    let (Ok(Some(r)), Ok(running)) = (rollout::current(store), crate::fleet::running(store)) else {
        return html! {};
    };
    let progress = rollout::site_progress(&r, &running);
    let state = match r.state {
        RolloutState::Running => "berjalan",
        RolloutState::Paused => "DIJEDA",
        RolloutState::Aborted => "dibatalkan",
        RolloutState::Completed => "selesai",
    };
    let mut counts: Vec<BTreeMap<&str, usize>> = vec![BTreeMap::new(); r.waves.len()];
    for (_, wave, p) in &progress {
        if let Some(c) = counts.get_mut(*wave) {
            *c.entry(progress_label(*p)).or_default() += 1;
        }
    }
    let trouble: Vec<&(String, usize, SiteProgress)> = progress
        .iter()
        .filter(|(_, _, p)| matches!(p, SiteProgress::RolledBack | SiteProgress::Refused))
        .collect();
    html! {
        section #pembaruan {
            h2 { "Pembaruan agen ke versi " (r.version) ": " (state) }
            @if r.state == RolloutState::Paused {
                p.pesan {
                    @if trouble.is_empty() { "Pembaruan dijeda oleh admin. " }
                    @else { "Pembaruan dijeda: " (trouble.len()) " UPT tidak sehat pada versi " (r.version) " (lihat tabel di bawah, dengan alasan dari UPT). " }
                    "Lanjutkan dengan " code { "pasopati-collector rollout resume" } " (UPT yang gagal dicoba lagi) atau batalkan dengan " code { "rollout abort" } "." }
            }
            p { small { "Gelombang " (r.wave + 1) " dari " (r.waves.len()) ". Gelombang berikutnya dimulai setelah semua UPT gelombang ini sehat pada versi baru; UPT yang tidak sehat dalam "
                (r.health_timeout_secs) " detik kembali sendiri ke versi sebelumnya." } }
            table.urut #gelombang { tr { th { "Gelombang" } th { "UPT" } th { "Keadaan" } }
                @for ((i, w), c) in r.waves.iter().enumerate().zip(&counts) {
                    tr { td { (i + 1) ". " (w.label) } td { (w.sites.len()) }
                         td { @for (label, n) in c { (n) " " (label) "; " } } }
                }
            }
            @if !trouble.is_empty() {
                h3 { "UPT yang tidak sehat pada versi baru" }
                table.urut #masalah-pembaruan { tr { th { "UPT" } th { "Keadaan" } th { "Alasan" } }
                    @for (site, _, p) in &trouble {
                        tr { td { (site) } td { (progress_label(*p)) }
                             td { (running.get(site.as_str()).and_then(|r| r.update_reason.clone()).unwrap_or_default()) } }
                    }
                }
            }
        }
    }
}

/// The fleet: every site with its state, backlog and health, filtered by state and Kanwil.
pub fn armada(web: &Web, who: Principal, Query(q): Query<ListQuery>) -> Response {
    let mut sites = match api::site_views(web, &who.reach) {
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
    let admin = who.may(crate::web::SITE_ADMIN);
    let body = html! {
        // The rollout concerns the whole fleet: national users only.
        @if who.reach.is_national() { (rollout_section(web)) }
        form.saring method="get" action="/armada" {
            select name="state" { option value="" { "Semua keadaan" } @for st in states { option value=(st.as_str()) selected[q.state.as_deref() == Some(st.as_str())] { (st.label()) } } }
            @if who.reach.is_national() { (kanwil_select(q.kanwil.as_deref(), "Semua Kanwil")) }
            button type="submit" { "Saring" }
        }
        p { small { "Online: tersambung sekarang. Offline: tidak ada sambungan. Menumpuk: antrean bertambah. Senyap: tersambung tetapi tanpa laporan. "
            "Antrean: laporan yang belum dikirim menurut detak (heartbeat) terakhir; \u{201c}usang\u{201d} bila pusat sudah menerima laporan sesudah detak itu. Waktu menurut zona UPT." } }
        table.urut #armada { tr { th { "UPT" } th { "Kanwil" } th { "Keadaan" } th { "Antrean" } th { "Umur laporan tertua yang belum terkirim" } th { "Sinkron terakhir" } th { "Versi agen" } th { "Konfigurasi" } th { "Disk bebas (GiB)" } th { "Selisih jam (ms)" } @if admin { th { "" } } }
            @for s in &sites {
                @let zone = Zone::of_kanwil(&s.kanwil);
                @let stale = s.backlog_stale && s.backlog.is_some_and(|b| b > 0);
                tr data-site=(s.id) { td { (s.name) } td { (s.kanwil) } td class=(s.state.as_str()) { (s.state.label()) }
                     td { @if let Some(b) = s.backlog { @if stale { span.usang title=(format!("dilaporkan {}; ada laporan tersimpan sesudahnya", s.heartbeat_at.as_deref().map(|t| show::local_text(t, zone)).unwrap_or_default())) { (b) " (usang)" } } @else { (b) } } }
                     td { @if !stale { (s.oldest_unsent_at.as_deref().map(age).unwrap_or_default()) } } td { (s.last_sync_at.as_deref().map(|t| show::local_text(t, zone)).unwrap_or_else(|| "belum pernah".into())) } td { (s.agent_version.clone().unwrap_or_default()) }
                     td { @if s.config_wanted > 0 { @match s.config_version.filter(|v| *v > 0) { Some(v) if v == s.config_wanted => { "v" (v) }
                            Some(v) => { span.usang title=(s.config_error.clone().unwrap_or_else(|| "belum menerima versi terbaru".into())) { "v" (v) " (pusat: v" (s.config_wanted) ")" } }
                            None => { span.usang title=(s.config_error.clone().unwrap_or_else(|| "belum menerima pengaturan pusat".into())) { "belum (pusat: v" (s.config_wanted) ")" } } } } }
                     td { (s.disk_free_bytes.map(|b| format!("{:.1}", b as f64 / 1_073_741_824.0)).unwrap_or_default()) } td { (s.clock_offset_ms.map(|c| c.to_string()).unwrap_or_default()) }
                     @if admin { td { @if s.state != "revoked" {
                        form.token method="post" action=(format!("/armada/{}/token", s.id)) { (csrf_field(&who))
                            button type="submit" title=(format!("Token pendaftaran baru untuk {} (pemasangan ulang, token hilang)", s.name)) { "Token baru" } }
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
    pub(super) csrf: Option<String>,
    /// The site id, typed by the admin to confirm.
    #[serde(default)]
    konfirmasi: String,
}

/// Mints a new enrollment token for a site in the user's reach (a first installation, a
/// re-installation after a disk failure, a lost token) and shows it once.
pub fn armada_token(web: &Web, who: Principal, Path(id): Path<String>, _: CsrfOnly) -> Response {
    let Ok(site) = pasopati_common::SiteId::new(&id) else {
        return (StatusCode::BAD_REQUEST, "id UPT tidak sah").into_response();
    };
    // A Kanwil's administrator mints tokens only for the Kanwil's own sites.
    if !who.reach.site(site.as_str()) {
        return (StatusCode::NOT_FOUND, "UPT tidak ditemukan").into_response();
    }
    let state = &web.state;
    let token = match admin::site_token(
        &state.store,
        &state.authority,
        &state.config,
        &site,
        None,
        &format!("dashboard:{}", who.username),
    ) {
        Ok(t) => t,
        Err(admin::AdminError::Store(crate::store::StoreError::UnknownSite(_))) => {
            return (StatusCode::NOT_FOUND, "UPT tidak ditemukan").into_response()
        }
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let name = show::Names::of(&state.store).unit(site.as_str());
    let body = html! {
        p { "Token pendaftaran baru untuk " b { (name) } " (" code { (site.as_str()) } "), berlaku "
            (show::duration(state.config.token_ttl.0)) " dan hanya sekali pakai. Token ini hanya ditampilkan sekarang: salin, lalu kirim ke operator UPT lewat jalur yang aman." }
        pre.token { (token) }
        p { "Di UPT: " code { "sudo -u pasopati pasopati-agent enroll --data-dir /var/lib/pasopati-agent --token -" } ", tempel token, Enter, lalu Ctrl-D. Sertifikat lama tetap berlaku sampai token ini dipakai." }
        p { a href="/armada" { "Kembali ke Armada" } }
    };
    layout("Armada", "/armada", &who, body)
}

/// Revokes a site, only when the form carries the site's id typed in `konfirmasi`.
pub fn armada_cabut(
    web: &Web,
    who: Principal,
    Path(id): Path<String>,
    form: RevokeForm,
) -> Response {
    let Ok(site) = pasopati_common::SiteId::new(&id) else {
        return (StatusCode::BAD_REQUEST, "id UPT tidak sah").into_response();
    };
    // A Kanwil's administrator revokes only the Kanwil's own sites; another's is not found.
    if !who.reach.site(site.as_str()) {
        return (StatusCode::NOT_FOUND, "UPT tidak ditemukan").into_response();
    }
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
