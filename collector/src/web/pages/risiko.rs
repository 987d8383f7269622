//! Risiko: the risk score of each UPT and Kanwil today, explained part by part, with a
//! sparkline of its recorded daily history (see `crate::risk`).

use super::layout;
use crate::risk::{picture, ScopeRisk};
use crate::web::api::{internal, ListQuery};
use crate::web::show::{self, Zone};
use crate::web::{Principal, Web};
use axum::extract::Query;
use axum::response::Response;
use maud::{html, Markup};
use pasopati_analysis::risk::{Scope, MAX_SCORE};
use pasopati_common::Timestamp;

/// The days a sparkline spans.
const DAYS: i64 = 30;

/// A daily history as a small SVG line (0 at the bottom, 100 at the top), today at the right.
fn sparkline(history: &[f64]) -> Markup {
    let (w, h) = (120.0, 24.0);
    let step = if history.len() > 1 {
        w / (history.len() - 1) as f64
    } else {
        0.0
    };
    let points: Vec<String> = history
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * step,
                h - 1.0 - (v / MAX_SCORE).clamp(0.0, 1.0) * (h - 2.0)
            )
        })
        .collect();
    let label = format!(
        "riwayat skor {} hari: {}",
        history.len(),
        history
            .iter()
            .map(|v| format!("{v:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    html! {
        svg.garis width="120" height="24" role="img" aria-label=(label) {
            polyline points=(points.join(" ")) fill="none" stroke="#b00020" stroke-width="1.5" {}
        }
    }
}

/// What a score is made of, in words: `laporan mendesak 2 × 5 = 10; …`.
fn parts(r: &ScopeRisk) -> String {
    r.today
        .parts
        .iter()
        .map(|p| {
            format!(
                "{} {} × {} = {}",
                p.component.label(),
                p.value,
                p.weight,
                p.points
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `GET /risiko`: Risiko.
pub fn risiko(web: &Web, who: Principal, Query(q): Query<ListQuery>) -> Response {
    let picture = match picture(&web.state.store, &web.state.config, Timestamp::now(), DAYS) {
        Ok(p) => p,
        Err(e) => return internal(e),
    };
    let names = show::Names::of(&web.state.store);
    let shown = q.limit.unwrap_or(50);
    let row = |r: &ScopeRisk| {
        let name = match &r.today.scope {
            Scope::Upt(id) => names.unit(id),
            Scope::Kanwil(k) => k.clone(),
        };
        html! { tr { td { (name) } td { b { (format!("{:.0}", r.today.score)) } } td { (sparkline(&r.history)) } td { (parts(r)) } } }
    };
    let w = &picture.weights;
    let body = html! {
        p { "Per " (show::local_text(&picture.as_of, Zone::Wib)) ": skor 0–100 dari " (picture.period_days) " hari terakhir; garis menunjukkan " (picture.days) " hari sejak " (picture.from) " (" (picture.recorded_days) " hari tercatat)." }
        p.usang { "Bobot (collector.toml [risk.weights]): berita negatif " (w.negative_coverage) ", lonjakan " (w.spike) ", laporan mendesak " (w.urgent_report) ", tanpa kabar " (w.coverage_gap) ", klaim belum terverifikasi " (w.unverified_claim) " poin per satuan; jumlahnya paling tinggi 100." }
        h2 { "Kanwil" }
        (super::peta::kanwil_map(
            "Skor risiko hari ini per Kanwil (klik untuk melihat UPT-nya)",
            ["0–9", "10–24", "25–49", "50–74", "75–100"],
            |k| picture.kanwil.iter().find(|r| matches!(&r.today.scope, Scope::Kanwil(x) if x == k)).map(|r| super::peta::Tile {
                step: match r.today.score { s if s < 10.0 => 0, s if s < 25.0 => 1, s if s < 50.0 => 2, s if s < 75.0 => 3, _ => 4 },
                figure: format!("{:.0}", r.today.score),
                detail: format!("skor {:.0}; {}", r.today.score, parts(r)),
            }),
        ))
        table { tr { th { "Kanwil" } th { "Skor" } th { "Riwayat" } th { "Rincian" } }
            @for r in &picture.kanwil { (row(r)) } }
        h2 { "UPT" }
        @if picture.upt.len() > shown { p { (shown) " skor tertinggi dari " (picture.upt.len()) ". " a href=(format!("/risiko?limit={}", picture.upt.len())) { "Tampilkan semua" } } }
        table { tr { th { "UPT" } th { "Skor" } th { "Riwayat" } th { "Rincian" } }
            @for r in picture.upt.iter().take(shown) { (row(r)) } }
        p { a href="/api/v1/risk" { "Data JSON" } }
    };
    layout("Risiko", "/risiko", &who, body)
}
