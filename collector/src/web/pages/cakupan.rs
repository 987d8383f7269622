//! Cakupan: sites and Kanwil with neither reports nor news, and sites in the news without
//! reports.

use super::layout;
use crate::web::api::{internal, ListQuery};
use crate::web::show::{self, Zone};
use crate::web::{Principal, Web};
use axum::extract::Query;
use axum::response::Response;
use maud::html;

/// `GET /cakupan`: Cakupan.
pub fn cakupan(web: &Web, who: Principal, Query(q): Query<ListQuery>) -> Response {
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
        (super::peta::kanwil_map(
            "UPT tanpa laporan dan tanpa pemberitaan, per Kanwil (klik untuk melihat UPT-nya)",
            ["semua berkabar", "< 10 %", "10–24 %", "25–49 %", "≥ 50 %"],
            |k| c["kanwil"].as_array().into_iter().flatten().find(|x| x["kanwil"].as_str() == Some(k)).map(|x| {
                let total = x["upt_total"].as_u64().unwrap_or(0);
                let silent = x["upt_silent"].as_u64().unwrap_or(0);
                let share = if total == 0 { 0.0 } else { silent as f64 / total as f64 };
                super::peta::Tile {
                    step: match share { s if s <= 0.0 => 0, s if s < 0.10 => 1, s if s < 0.25 => 2, s if s < 0.5 => 3, _ => 4 },
                    figure: format!("{silent}/{total}"),
                    detail: format!("{silent} dari {total} UPT tanpa kabar"),
                }
            }),
        ))
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
